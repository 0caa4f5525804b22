# A single etcd member for development. The plan warns that one member has
# no fault tolerance; use three or five members for anything that matters.
terraform {
  required_providers {
    etcd = {
      source = "terraform-provider-etcd/etcd"
    }
  }
}

variable "host" {
  description = "Address of the host."
  type        = string
}

variable "ssh_config_file" {
  description = "An ssh_config file naming the host's user, key and known_hosts; null uses ~/.ssh/config."
  type        = string
  default     = null
}

variable "etcd_binaries" {
  description = "Directory on this machine holding etcd, etcdctl and etcdutl 3.6.17."
  type        = string
}

resource "etcd_ca" "dev" {
  common_name = "etcd-dev-ca"
}

resource "etcd_cluster" "dev" {
  name                  = "etcd-dev"
  ca_cert_pem           = etcd_ca.dev.cert_pem
  ca_key_pem            = etcd_ca.dev.private_key_pem
  etcd_version          = "3.6.17"
  purge_data_on_destroy = true

  binary_source {
    local_path = var.etcd_binaries
  }

  # User, key and known_hosts come from the ssh_config file.
  ssh {
    config_file = var.ssh_config_file
  }

  member {
    name = "dev"
    host = var.host
  }
}

output "endpoint" {
  value = etcd_cluster.dev.client_endpoints[0]
}
