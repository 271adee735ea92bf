"""Finding peers: mDNS on the LAN, discovery servers across networks, one address cache."""
