from p2pnode.transition.detect import active_mechanism


def test_addresses_tell_the_mechanism():
    assert active_mechanism(["127.0.0.1", "::1", "10.0.0.5", "2001:db8::5"]) == "native"
    assert active_mechanism(["127.0.0.1", "10.0.0.5", "2002:c000:20a::c000:20a"]) == "6to4"
    assert active_mechanism(["192.0.2.10", "2001:0:c000:201:0:3fff:3f00:fdf5"]) == "teredo"
    assert active_mechanism(["10.0.0.5", "2001:db8:5::5efe:a00:5"]) == "isatap"
    assert active_mechanism(["fe80::5efe:a00:5%eth0", "10.0.0.5"]) == "native"  # link-local ISATAP id: no router
    assert active_mechanism(["2001:db8:1::2", "192.0.0.2"]) == "dslite"
    assert active_mechanism(["2001:db8:1::2", "192.0.0.1"]) == "464xlat"
    assert active_mechanism(["2001:db8:1::2", "192.0.0.1", "203.0.113.5"]) == "native"
    assert active_mechanism(["not an address"]) == "native"
