terraform {
  required_providers {
    etcd = { source = "terraform-provider-etcd/etcd" }
  }
}
variable "hosts" { type = list(string) }
variable "ssh_private_key_path" { type = string }
variable "known_hosts_path" { type = string }
variable "etcd_binaries" { type = string }
variable "etcd_version" { type = string }
variable "names" {
  description = "Member names in the order of hosts; default e1, e2, ..."
  type        = list(string)
  default     = []
}
variable "flags" {
  type    = map(string)
  default = {}
}
variable "backup_schedule" {
  description = "A backup block with this schedule; null: none."
  type        = string
  default     = null
}
variable "backup_copy_host" {
  description = "A copy_to block for this host (user deploy); null: none."
  type        = string
  default     = null
}
variable "backup_keep" {
  type    = number
  default = 3
}
variable "initial_snapshot_path" {
  type    = string
  default = null
}
variable "command_timeout" {
  type    = string
  default = "10m"
}
resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}
resource "etcd_cluster" "main" {
  name         = "scaling"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = var.etcd_version
  extra_flags  = var.flags

  initial_snapshot_path = var.initial_snapshot_path
  pki_dir      = "/etc/kubernetes/pki/etcd"
  binary_source {
    local_path = var.etcd_binaries
  }
  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }
  dynamic "backup" {
    for_each = var.backup_schedule == null ? [] : [var.backup_schedule]
    content {
      schedule = backup.value
      keep     = var.backup_keep
      dynamic "copy_to" {
        for_each = var.backup_copy_host == null ? [] : [var.backup_copy_host]
        content {
          host = copy_to.value
          user = "deploy"
          dir  = "/home/deploy/etcd-backups"
        }
      }
    }
  }
  timeouts {
    command = var.command_timeout
  }
  dynamic "member" {
    for_each = var.hosts
    content {
      name = length(var.names) > 0 ? var.names[member.key] : "e${member.key + 1}"
      host = member.value
    }
  }
}
