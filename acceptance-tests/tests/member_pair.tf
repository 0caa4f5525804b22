# Two etcd_member resources joining one cluster made by hand; Terraform
# changes them in parallel, the provider's change lock one at a time.
terraform {
  required_providers {
    etcd = { source = "terraform-provider-etcd/etcd" }
  }
}
variable "hosts" { type = map(string) }
variable "cluster_endpoints" { type = list(string) }
variable "ca_cert_path" { type = string }
variable "ca_key_path" { type = string }
variable "ssh_private_key_path" { type = string }
variable "known_hosts_path" { type = string }
variable "etcd_binaries" { type = string }
variable "extra_flags" {
  type    = map(string)
  default = {}
}
resource "etcd_member" "pair" {
  for_each          = var.hosts
  name              = each.key
  host              = each.value
  cluster_endpoints = var.cluster_endpoints
  ca_cert_pem       = file(var.ca_cert_path)
  ca_key_pem        = file(var.ca_key_path)
  etcd_version      = "3.6.17"
  pki_dir           = "/etc/kubernetes/pki/etcd"
  extra_flags       = var.extra_flags
  binary_source {
    local_path = var.etcd_binaries
  }
  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }
}
