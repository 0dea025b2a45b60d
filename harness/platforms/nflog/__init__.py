"""Linux kernel backend: nftables drop+log in an own namespace, NFLOG subscriber."""
