# One cluster shared by several consumers, each reaching only its own keys:
# authentication on, a role per consumer limited to its prefix, and a user
# per consumer. kube-apiserver is a certificate user (the common name of its
# client certificate is its user name); Patroni is a password user, because
# it talks to etcd's HTTP gateway, where etcd does not take a certificate's
# name (and refuses one that has a name). Both need a client certificate
# for TLS.
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

variable "apiserver_hosts" {
  description = "Addresses of the Kubernetes control-plane hosts (reachable as root)."
  type        = list(string)
}

variable "patroni_hosts" {
  description = "Addresses of the hosts that run Patroni (reachable as root; Patroni installed)."
  type        = list(string)
  default     = []
}

variable "patroni_password" {
  description = "Patroni's etcd password."
  type        = string
  sensitive   = true
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
  name         = "shared-etcd"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = "3.6.17"
  auth_enabled = true

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

# Kubernetes keeps everything under /registry/.
resource "etcd_role" "kubernetes" {
  name              = "kubernetes"
  cluster_endpoints = etcd_cluster.main.client_endpoints
  ca_cert_pem       = etcd_ca.main.cert_pem
  ca_key_pem        = etcd_ca.main.private_key_pem

  permission {
    key        = "/registry/"
    prefix     = true
    permission = "readwrite"
  }
}

resource "etcd_user" "apiserver" {
  name              = "kube-apiserver-etcd-client"
  roles             = [etcd_role.kubernetes.name]
  cluster_endpoints = etcd_cluster.main.client_endpoints
  ca_cert_pem       = etcd_ca.main.cert_pem
  ca_key_pem        = etcd_ca.main.private_key_pem
}

resource "etcd_client_certificate" "apiserver" {
  ca_cert_pem    = etcd_ca.main.cert_pem
  ca_key_pem     = etcd_ca.main.private_key_pem
  trusted_ca_pem = etcd_cluster.main.trusted_ca_pem
  common_name    = etcd_user.apiserver.name

  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }

  dynamic "install" {
    for_each = var.apiserver_hosts
    content {
      host      = install.value
      cert_path = "/etc/kubernetes/pki/apiserver-etcd-client.crt"
      key_path  = "/etc/kubernetes/pki/apiserver-etcd-client.key"
      ca_path   = "/etc/kubernetes/pki/etcd/ca.crt"
    }
  }
}

# Patroni keeps its keys under /service/ (its `namespace`).
resource "etcd_role" "patroni" {
  name              = "patroni"
  cluster_endpoints = etcd_cluster.main.client_endpoints
  ca_cert_pem       = etcd_ca.main.cert_pem
  ca_key_pem        = etcd_ca.main.private_key_pem

  permission {
    key        = "/service/"
    prefix     = true
    permission = "readwrite"
  }
}

resource "etcd_user" "patroni" {
  name              = "patroni"
  password          = var.patroni_password
  roles             = [etcd_role.patroni.name]
  cluster_endpoints = etcd_cluster.main.client_endpoints
  ca_cert_pem       = etcd_ca.main.cert_pem
  ca_key_pem        = etcd_ca.main.private_key_pem
}

resource "etcd_client_certificate" "patroni" {
  ca_cert_pem    = etcd_ca.main.cert_pem
  ca_key_pem     = etcd_ca.main.private_key_pem
  trusted_ca_pem = etcd_cluster.main.trusted_ca_pem
  # No common name: with authentication on, etcd refuses a gateway request
  # whose certificate names anyone. Patroni logs in with its password.
  organization = "patroni"

  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }

  dynamic "install" {
    for_each = var.patroni_hosts
    content {
      host           = install.value
      cert_path      = "/etc/patroni/etcd/client.crt"
      key_path       = "/etc/patroni/etcd/client.key"
      ca_path        = "/etc/patroni/etcd/ca.crt"
      owner          = "postgres"
      group          = "postgres"
      reload_command = "systemctl try-reload-or-restart patroni"
    }
  }
}

# The etcd3 section of Patroni's configuration, with its user.
output "patroni_etcd3" {
  sensitive = true
  value = yamlencode({
    etcd3 = {
      protocol = "https"
      hosts    = [for endpoint in etcd_cluster.main.client_endpoints : trimprefix(endpoint, "https://")]
      cacert   = "/etc/patroni/etcd/ca.crt"
      cert     = "/etc/patroni/etcd/client.crt"
      key      = "/etc/patroni/etcd/client.key"
      username = etcd_user.patroni.name
      password = var.patroni_password
    }
  })
}
