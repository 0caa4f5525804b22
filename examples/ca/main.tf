# A certificate authority for an etcd cluster.
terraform {
  required_providers {
    etcd = {
      source = "terraform-provider-etcd/etcd"
    }
  }
}

resource "etcd_ca" "main" {
  common_name           = "etcd-ca"
  organization          = "infrastructure"
  key_algorithm         = "ECDSA_P256"
  validity_period_hours = 87600
  early_renewal_hours   = 720
}

output "ca_cert_pem" {
  value = etcd_ca.main.cert_pem
}

output "ca_expires" {
  value = etcd_ca.main.validity_end_time
}
