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
variable "backup_host" { type = string }
variable "flags" {
  type    = map(string)
  default = {}
}
variable "auth_enabled" {
  type    = bool
  default = false
}
variable "snapshot_path" {
  description = "An etcd_snapshot saved here; null: none."
  type        = string
  default     = null
}
variable "restore_from" {
  type    = string
  default = null
}
resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}
resource "etcd_cluster" "main" {
  name         = "versions"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = var.etcd_version
  extra_flags  = var.flags
  auth_enabled = var.auth_enabled
  pki_dir      = "/etc/kubernetes/pki/etcd"

  initial_snapshot_path    = var.restore_from
  cert_validity_hours      = 720
  cert_early_renewal_hours = 24
  binary_source {
    local_path = var.etcd_binaries
  }
  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }
  backup {
    schedule = "*:*:0/20"
    keep     = 3
    copy_to {
      host = var.backup_host
      user = "deploy"
      dir  = "/home/deploy/etcd-backups"
    }
  }
  dynamic "member" {
    for_each = var.hosts
    content {
      name = "e${member.key + 1}"
      host = member.value
    }
  }
}
resource "etcd_snapshot" "main" {
  count             = var.snapshot_path == null ? 0 : 1
  cluster_endpoints = etcd_cluster.main.client_endpoints
  ca_cert_pem       = etcd_ca.main.cert_pem
  ca_key_pem        = etcd_ca.main.private_key_pem
  path              = var.snapshot_path
}
