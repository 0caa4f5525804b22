# A three-member cluster that backs itself up: every member snapshots its
# own local member on a schedule into /var/backups/etcd, verifies each
# snapshot and keeps the newest 48. A broken backup job (timer stopped,
# runs failing, no new snapshot within twice the schedule) shows in the
# plan as drift, and apply repairs it.
#
# Recovery when a majority of the members is lost for good (see the guide
# "Backups and disaster recovery"): copy the newest snapshot from a
# surviving member, then
#   terraform apply -var initial_snapshot_path=restore.db -replace=etcd_cluster.main
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

variable "backup_schedule" {
  description = "When each member takes a snapshot: a systemd calendar expression."
  type        = string
  default     = "*:0/30"
}

variable "initial_snapshot_path" {
  description = "A snapshot to start a new (or recovered) cluster from; null for an empty one."
  type        = string
  default     = null
}

resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}

resource "etcd_cluster" "main" {
  name         = "etcd-backed-up"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = "3.6.17"
  pki_dir      = "/etc/kubernetes/pki/etcd"

  initial_snapshot_path = var.initial_snapshot_path

  backup {
    schedule = var.backup_schedule
    keep     = 48
  }

  binary_source {
    local_path = var.etcd_binaries
  }

  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }

  member {
    name = "e1"
    host = var.hosts[0]
  }
  member {
    name = "e2"
    host = var.hosts[1]
  }
  member {
    name = "e3"
    host = var.hosts[2]
  }
}

output "endpoints" {
  value = etcd_cluster.main.client_endpoints
}

output "status" {
  value = etcd_cluster.main.status
}
