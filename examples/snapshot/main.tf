# A three-member cluster with a snapshot of its keyspace saved on the machine
# running Terraform. Run `terraform apply -var snapshot_day=$(date +%F)` once
# a day for a daily snapshot. To rebuild a lost cluster from a snapshot,
# create it again with restore_from set to a copy of a snapshot file.
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

variable "snapshot_path" {
  description = "Where the snapshot is saved on this machine."
  type        = string
  default     = "etcd-snapshot.db"
}

variable "snapshot_day" {
  description = "A new value takes a new snapshot."
  type        = string
  default     = ""
}

variable "restore_from" {
  description = "A snapshot that a newly created cluster starts from; null for an empty cluster."
  type        = string
  default     = null
}

resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}

resource "etcd_cluster" "main" {
  name                  = "etcd-cluster-0"
  ca_cert_pem           = etcd_ca.main.cert_pem
  ca_key_pem            = etcd_ca.main.private_key_pem
  etcd_version          = "3.6.17"
  pki_dir               = "/etc/kubernetes/pki/etcd"
  initial_snapshot_path = var.restore_from

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

resource "etcd_snapshot" "daily" {
  cluster_endpoints = etcd_cluster.main.client_endpoints
  ca_cert_pem       = etcd_ca.main.cert_pem
  ca_key_pem        = etcd_ca.main.private_key_pem
  path              = var.snapshot_path
  triggers = {
    day = var.snapshot_day
  }
}

output "snapshot_revision" {
  value = etcd_snapshot.daily.revision
}
