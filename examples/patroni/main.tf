# etcd for Patroni: a three-member cluster, and Patroni's client certificate
# installed on every PostgreSQL host where its configuration points
# (`/etc/patroni/etcd/`, owned by postgres), reissued before it expires and
# kept trusted while the cluster rotates to a new CA. Patroni reloads when
# its files change. The `etcd3` section of Patroni's configuration is an
# output. Install Patroni (Debian: `patroni`, `postgresql-15`) on the
# PostgreSQL hosts first: the files belong to its `postgres` user.
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

variable "postgresql_hosts" {
  description = "Addresses of the hosts that run Patroni (reachable as root)."
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
  name         = "patroni-etcd"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = "3.6.17"

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

# Patroni's identity towards etcd. With the cluster's trusted_ca_pem as its
# CA file it keeps working while the cluster rotates to a new CA.
resource "etcd_client_certificate" "patroni" {
  ca_cert_pem    = etcd_ca.main.cert_pem
  ca_key_pem     = etcd_ca.main.private_key_pem
  trusted_ca_pem = etcd_cluster.main.trusted_ca_pem
  common_name    = "patroni"

  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }

  dynamic "install" {
    for_each = var.postgresql_hosts
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

# Paste into Patroni's configuration (/etc/patroni/config.yml).
output "patroni_etcd3" {
  value = yamlencode({
    etcd3 = {
      protocol = "https"
      hosts    = [for endpoint in etcd_cluster.main.client_endpoints : trimprefix(endpoint, "https://")]
      cacert   = "/etc/patroni/etcd/ca.crt"
      cert     = "/etc/patroni/etcd/client.crt"
      key      = "/etc/patroni/etcd/client.key"
    }
  })
}
