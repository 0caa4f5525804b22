# A fourth member for a running cluster this configuration does not own,
# here one made by kubeadm or by hand with kubeadm's certificate layout.
# The cluster's CA certificate and key are read on the machine running
# Terraform; the key never goes to the new member's host. Four members
# tolerate no more failures than three: add two to keep an odd count, or add
# one to replace a host, then take the old member out.
terraform {
  required_providers {
    etcd = {
      source = "terraform-provider-etcd/etcd"
    }
  }
}

variable "host" {
  description = "Address of the new member's host (sshd and systemd, reachable as root)."
  type        = string
}

variable "cluster_endpoints" {
  description = "Client URLs of the running cluster's members."
  type        = list(string)
}

variable "ca_cert_path" {
  description = "The cluster's CA certificate, e.g. a copy of /etc/kubernetes/pki/etcd/ca.crt."
  type        = string
}

variable "ca_key_path" {
  description = "The cluster's CA key, e.g. a copy of /etc/kubernetes/pki/etcd/ca.key."
  type        = string
}

variable "ssh_private_key_path" {
  description = "Private key that logs in as root on the host."
  type        = string
}

variable "known_hosts_path" {
  description = "known_hosts file with the host's key."
  type        = string
}

variable "etcd_binaries" {
  description = "Directory on this machine holding etcd, etcdctl and etcdutl 3.6.17 (the cluster's version)."
  type        = string
}

variable "extra_flags" {
  description = "More etcd settings; a change is applied by restarting the member."
  type        = map(string)
  default     = {}
}

resource "etcd_member" "e4" {
  name              = "e4"
  host              = var.host
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

output "member_id" {
  value = etcd_member.e4.member_id
}
