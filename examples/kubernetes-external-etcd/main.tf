# An external etcd for a kubeadm control plane: a three-member cluster, and
# the client certificates `kubeadm init phase certs` would make
# (apiserver-etcd-client, and healthcheck-client for etcd's own probes),
# installed where kubeadm expects them on every control-plane host and
# reissued before they expire. The kubeadm ClusterConfiguration's
# `etcd.external` part is an output.
terraform {
  required_providers {
    etcd = {
      source = "terraform-provider-etcd/etcd"
    }
  }
}

variable "etcd_hosts" {
  description = "Addresses of the three etcd member hosts (sshd and systemd, reachable as root)."
  type        = list(string)
}

variable "control_plane_hosts" {
  description = "Addresses of the Kubernetes control-plane hosts (reachable as root)."
  type        = list(string)
}

variable "ssh_private_key_path" {
  description = "Private key that logs in as root on all the hosts."
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
  name         = "kubernetes-etcd"
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

  dynamic "member" {
    for_each = var.etcd_hosts
    content {
      name = "etcd-${member.key + 1}"
      host = member.value
    }
  }
}

# kube-apiserver's identity towards etcd, as kubeadm names it. With the
# cluster's trusted_ca_pem it keeps working while the cluster rotates to a
# new CA.
resource "etcd_client_certificate" "apiserver" {
  ca_cert_pem    = etcd_ca.main.cert_pem
  ca_key_pem     = etcd_ca.main.private_key_pem
  trusted_ca_pem = etcd_cluster.main.trusted_ca_pem
  common_name    = "kube-apiserver-etcd-client"
  organization   = "system:masters"

  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }

  dynamic "install" {
    for_each = var.control_plane_hosts
    content {
      host      = install.value
      cert_path = "/etc/kubernetes/pki/apiserver-etcd-client.crt"
      key_path  = "/etc/kubernetes/pki/apiserver-etcd-client.key"
      ca_path   = "/etc/kubernetes/pki/etcd/ca.crt"
    }
  }
}

# The identity kubeadm's etcd health checks use.
resource "etcd_client_certificate" "healthcheck" {
  ca_cert_pem    = etcd_ca.main.cert_pem
  ca_key_pem     = etcd_ca.main.private_key_pem
  trusted_ca_pem = etcd_cluster.main.trusted_ca_pem
  common_name    = "kube-etcd-healthcheck-client"
  organization   = "system:masters"

  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }

  dynamic "install" {
    for_each = var.control_plane_hosts
    content {
      host      = install.value
      cert_path = "/etc/kubernetes/pki/etcd/healthcheck-client.crt"
      key_path  = "/etc/kubernetes/pki/etcd/healthcheck-client.key"
    }
  }
}

# Paste into kubeadm's ClusterConfiguration (kubeadm.k8s.io/v1beta3).
output "kubeadm_etcd_external" {
  value = yamlencode({
    etcd = {
      external = {
        endpoints = etcd_cluster.main.client_endpoints
        caFile    = "/etc/kubernetes/pki/etcd/ca.crt"
        certFile  = "/etc/kubernetes/pki/apiserver-etcd-client.crt"
        keyFile   = "/etc/kubernetes/pki/apiserver-etcd-client.key"
      }
    }
  })
}
