# A running cluster (made by hand, by a runbook or by kubeadm): a client URL
# of one member, then the cluster CA's certificate and key on the machine
# running Terraform. Members, ports and the etcd version come from the live
# cluster. The first apply after import records the settings the etcd API
# cannot tell (name, directories, ssh, binary_source) from the configuration;
# it changes nothing on the hosts. From then on drift is detected as usual.
terraform import etcd_cluster.main https://10.0.0.11:2379,/etc/kubernetes/pki/etcd/ca.crt,/etc/kubernetes/pki/etcd/ca.key
