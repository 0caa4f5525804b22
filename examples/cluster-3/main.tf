# A three-member etcd cluster with TLS everywhere, bootstrapped over SSH,
# with its certificates in kubeadm's layout (/etc/kubernetes/pki/etcd), so
# that a kubeadm control plane can use it as an external etcd.
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

resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}

resource "etcd_cluster" "main" {
  name         = "etcd-cluster-0"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
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

output "member_ids" {
  value = etcd_cluster.main.member_ids
}

output "ca_cert_pem" {
  value = etcd_ca.main.cert_pem
}
