"""Router port mapping: NAT-PMP and PCP messages (``messages``); the node's use of them and of UPnP IGD is
``p2pnode.runtime.portmap``."""
