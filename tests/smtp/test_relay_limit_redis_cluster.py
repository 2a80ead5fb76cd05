"""Relay limits on a Redis Cluster of three primaries that the test creates
(redis-cli --cluster create): a user's budget and the client address's
budget live in different slots (on different nodes, here), and a hundred
sessions at once split across two qmail-smtpd servers still get exactly N
of whichever is the binding limit, with both counters charged alike."""

import pytest

import redis_harness as rh
import relaylimits as rl
import tlsauth as ta

SESSIONS = 100


@pytest.fixture
def cluster():
    with rh.RedisCluster() as c:
        yield c


def no_reservation_left(cluster) -> bool:
    for node in cluster.nodes:
        for key in node.cmd("KEYS", "qt1:{*") or []:
            if any(f.startswith("~") for f in node.cmd("HKEYS", key)):
                return False
    return True


@pytest.mark.parametrize("binding", ["user", "address"])
def test_user_and_address_limits_in_different_slots_give_exactly_n(qmail, cluster, binding):
    limit = 137
    user_limit, ip_limit = (limit, 1000) if binding == "user" else (1000, limit)
    rh.use_store(qmail.control, cluster.url)
    rl.table(qmail, f"alice@test.example rcpt={user_limit}/1d\n127.0.0.1 rcpt={ip_limit}/1d\n")
    user_key, ip_key = "qt1:{u:alice@test.example}", "qt1:{a:127.0.0.1}"
    a, b = rh.two_servers(qmail, args=ta.auth_args(), env={"FORCETLS": "0"}, concurrency=SESSIONS)
    results = rh.sessions_split_across([a, b], SESSIONS)
    assert sum(got for got, _ in results) == limit
    assert sum(len(m["rcpts"]) for m in qmail.queue.messages()) == limit
    assert rl.used("alice@test.example") == limit
    assert rl.used("127.0.0.1") == limit
    # the two budgets are on different nodes: every charge went the
    # reserve-and-commit way, and none is left half done
    assert cluster.owner(user_key) is not cluster.owner(ip_key)
    assert no_reservation_left(cluster)
    for node in cluster.nodes:
        for key in node.cmd("KEYS", "*") or []:
            assert node.cmd("PTTL", key) > 0, key
    log = a.log() + b.log()
    assert "store fault" not in log
    who = "user alice@test.example" if binding == "user" else "address 127.0.0.1"
    assert log.count(f"throttle: relay limit {who} ip 127.0.0.1 rcpt {limit}/{limit} per 1d: 451\n") \
        == SESSIONS * 5 - limit
    assert rh.no_lmdb_store()


def test_a_cluster_node_that_is_down_follows_the_policy(qmail, cluster):
    qmail.control.write("throttlefail", "closed\n")
    rh.use_store(qmail.control, cluster.url + "?connect_timeout=200&timeout=200")
    rl.table(qmail, "default rcpt=10/1h\n")
    srv = qmail.smtpd(env=rl.RELAY)
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.accepted(rl.rcpts(s, rl.far(2))) == 2
    s.close()
    cluster.owner("qt1:{a:127.0.0.1}").kill()
    s = rl.session(srv)
    s.cmd("MAIL FROM:<a@client.example>")
    assert rl.rcpts(s, rl.far(1)) == [b"451 4.3.0 relay limits are temporarily unavailable, try again later\r\n"]
    s.close()
    assert "throttle: store fault ip 127.0.0.1 charge: unavailable (" in srv.log()
