# An existing CA (here kubeadm's etcd CA) from its PEM certificate and key,
# given as paths on the machine running Terraform. The key must belong to
# the certificate and the certificate must be a CA.
terraform import etcd_ca.main /etc/kubernetes/pki/etcd/ca.crt,/etc/kubernetes/pki/etcd/ca.key
