# A five-member etcd cluster whose hosts download the etcd release tarball
# themselves and check it against its SHA-256.
terraform {
  required_providers {
    etcd = {
      source = "terraform-provider-etcd/etcd"
    }
  }
}

variable "hosts" {
  description = "Addresses of the five member hosts."
  type        = list(string)
}

variable "ssh_private_key_path" {
  description = "Private key that logs in as root on the hosts."
  type        = string
}

variable "known_hosts_path" {
  description = "known_hosts file with the hosts' keys."
  type        = string
}

variable "etcd_url" {
  description = "URL of the etcd-v3.6.17-linux-amd64.tar.gz release tarball, as the hosts reach it."
  type        = string
}

variable "etcd_sha256" {
  description = "SHA-256 of that tarball."
  type        = string
}

resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}

resource "etcd_cluster" "main" {
  name         = "etcd-cluster-5"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = "3.6.17"

  binary_source {
    url    = var.etcd_url
    sha256 = var.etcd_sha256
  }

  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }

  dynamic "member" {
    for_each = var.hosts
    content {
      name = "e${member.key + 1}"
      host = member.value
    }
  }

  extra_flags = {
    "snapshot-count"     = "10000"
    "heartbeat-interval" = "100"
  }
}

output "endpoints" {
  value = etcd_cluster.main.client_endpoints
}
