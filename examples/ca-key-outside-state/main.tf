# A three-member cluster whose CA private key is in no state or plan file.
# The key lives in a file on the machine running Terraform (or comes from a
# secret store as an ephemeral value): the provider block reads it at every
# run, and etcd_ca signs the CA certificate with it as a write-only value
# (Terraform 1.11 or later). Make a key with
#   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key
# To rotate the CA: make a new key, set ca_key_path to it, previous_ca_key_path
# to the old one and bump ca_key_version; apply twice (both CAs trusted, then
# the new one only), then drop previous_ca_key_path.
terraform {
  required_providers {
    etcd = {
      source = "terraform-provider-etcd/etcd"
    }
  }
}

variable "hosts" {
  description = "Addresses of the three member hosts (sshd and systemd, reachable as root)."
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

variable "etcd_binaries" {
  description = "Directory on this machine holding etcd, etcdctl and etcdutl 3.6.17."
  type        = string
}

variable "ca_key_path" {
  description = "The CA's private key (PEM) on this machine."
  type        = string
}

variable "ca_key_version" {
  description = "Bump it to make the CA again from the key at ca_key_path (a CA rotation)."
  type        = number
  default     = 1
}

variable "previous_ca_key_path" {
  description = "During a CA rotation: the old CA's key, which the first stage still signs with."
  type        = string
  default     = null
}

variable "snapshot_path" {
  description = "Where a snapshot is saved on this machine."
  type        = string
  default     = "etcd-snapshot.db"
}

provider "etcd" {
  ca_key_files = compact([var.ca_key_path, var.previous_ca_key_path])
}

resource "etcd_ca" "main" {
  common_name                = "etcd-ca"
  private_key_pem_wo         = file(var.ca_key_path)
  private_key_pem_wo_version = var.ca_key_version
}

# No ca_key_pem: the provider finds the key of ca_cert_pem in its block.
resource "etcd_cluster" "main" {
  name         = "etcd-cluster-0"
  ca_cert_pem  = etcd_ca.main.cert_pem
  etcd_version = "3.6.17"
  pki_dir      = "/etc/kubernetes/pki/etcd"

  binary_source {
    local_path = var.etcd_binaries
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
}

resource "etcd_snapshot" "first" {
  cluster_endpoints = etcd_cluster.main.client_endpoints
  ca_cert_pem       = etcd_ca.main.cert_pem
  path              = var.snapshot_path
}

output "ca_cert_pem" {
  value = etcd_ca.main.cert_pem
}
