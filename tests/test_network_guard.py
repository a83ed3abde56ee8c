"""The session-wide guard in conftest.py: no test reaches the network, loopback still works."""
import socket
import urllib.request

import pytest

from tests.conftest import NetworkBlocked


@pytest.mark.parametrize("address", [("192.0.2.1", 80), ("10.0.0.1", 443), ("example.com", 80)])
def test_connect_to_non_loopback_raises(address):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(NetworkBlocked, match="network"):
        s.connect(address)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(NetworkBlocked):
        s.connect_ex(address)


def test_a_download_fails_loudly():
    # urllib turns OSErrors into URLError; the guard's error is not one and so reaches the test.
    with pytest.raises(NetworkBlocked):
        urllib.request.urlopen("http://192.0.2.1/weights.onnx", timeout=1)


def test_loopback_still_connects():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5) as client:
            conn, _ = server.accept()
            client.sendall(b"ping")
            assert conn.recv(4) == b"ping"
            conn.close()
