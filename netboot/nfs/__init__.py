"""NFS for NetBoot root images: the configuration of the nfs-ganesha we supervise."""
