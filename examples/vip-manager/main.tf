# etcd for vip-manager 1.x, which follows Patroni's leader key through
# etcd's v2 API: a three-member cluster that serves the v2 API
# (`enable-v2`), and vip-manager's client certificate installed on every
# host that runs it (`/etc/vip-manager/etcd/`), reissued before it expires
# and kept trusted while the cluster rotates to a new CA. vip-manager reads
# its certificate files only when it starts: it is restarted when they
# change. The settings for its environment file (Debian:
# `/etc/default/vip-manager`) are an output; add the VIP, its netmask and
# interface, the key and the value to follow. Install vip-manager (Debian:
# `vip-manager`) on those hosts first.
#
# Keys written through the v2 API are not visible through v3 and the other
# way round: the leader key must be written through v2 (Patroni's `etcd`
# section, not `etcd3`). etcd's v3 roles do not govern the v2 API: any
# client with a certificate from the cluster's CA can read and write v2 keys.
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

variable "vip_manager_hosts" {
  description = "Addresses of the hosts that run vip-manager (reachable as root)."
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
  description = "Directory on this machine holding etcd, etcdctl and etcdutl 3.5.36."
  type        = string
}

resource "etcd_ca" "main" {
  common_name = "etcd-ca"
}

resource "etcd_cluster" "main" {
  name         = "vip-etcd"
  ca_cert_pem  = etcd_ca.main.cert_pem
  ca_key_pem   = etcd_ca.main.private_key_pem
  etcd_version = "3.5.36"

  # vip-manager 1.x speaks only etcd's v2 API, which etcd 3.5 serves only
  # when asked (etcd 3.6 removed it: the plan refuses enable-v2 there). Adding it to a running cluster restarts one member at a time.
  extra_flags = {
    "enable-v2" = "true"
  }

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

# vip-manager's identity towards etcd. With the cluster's trusted_ca_pem as
# its CA file it keeps working while the cluster rotates to a new CA.
resource "etcd_client_certificate" "vip_manager" {
  ca_cert_pem    = etcd_ca.main.cert_pem
  ca_key_pem     = etcd_ca.main.private_key_pem
  trusted_ca_pem = etcd_cluster.main.trusted_ca_pem
  common_name    = "vip-manager"

  ssh {
    user             = "root"
    private_key_path = var.ssh_private_key_path
    known_hosts_path = var.known_hosts_path
  }

  dynamic "install" {
    for_each = var.vip_manager_hosts
    content {
      host           = install.value
      cert_path      = "/etc/vip-manager/etcd/client.crt"
      key_path       = "/etc/vip-manager/etcd/client.key"
      ca_path        = "/etc/vip-manager/etcd/ca.crt"
      reload_command = "systemctl try-restart vip-manager"
    }
  }
}

# Lines for vip-manager's environment file (/etc/default/vip-manager on
# Debian), beside VIP_IP, VIP_MASK, VIP_IFACE, VIP_KEY and VIP_HOST.
output "vip_manager_environment" {
  value = join("\n", [
    "VIP_TYPE=\"etcd\"",
    "VIP_ENDPOINT=\"${join(",", etcd_cluster.main.client_endpoints)}\"",
    "VIP_ETCD_CA_FILE=\"/etc/vip-manager/etcd/ca.crt\"",
    "VIP_ETCD_CERT_FILE=\"/etc/vip-manager/etcd/client.crt\"",
    "VIP_ETCD_KEY_FILE=\"/etc/vip-manager/etcd/client.key\"",
  ])
}
