"""A minimal HTTP/2-over-TLS server (ALPN h2) for tests, on 127.0.0.1.

It records every request's body and answers a fixed status; it counts
TLS connections and streams, so a test can tell whether a client
multiplexed its requests over one connection. python3-h2 speaks the
protocol; the certificate is made here with python3-cryptography.
"""
import datetime
import ipaddress
import os
import socket
import ssl
import threading
import time

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def make_cert(directory, name="127.0.0.1"):
    """A self-signed certificate for 127.0.0.1; returns (cert, key) paths.
    The certificate doubles as the client's CA file."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(name))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None),
                           True)
            .sign(key, hashes.SHA256()))
    cert_path = os.path.join(directory, "h2-cert.pem")
    key_path = os.path.join(directory, "h2-key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


class H2Server:
    """Serves until stop(); status is what every request gets."""

    def __init__(self, cert, key, status=200):
        self.status = status
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.set_alpn_protocols(["h2"])
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.bodies = []
        self.connections = 0
        self.alpn = []
        self.max_concurrent = 0
        self._stop = False
        self._threads = []
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    @property
    def url(self):
        return "https://127.0.0.1:%d/notify" % self.port

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,),
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, raw):
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        with self.lock:
            self.connections += 1
            self.alpn.append(tls.selected_alpn_protocol())
        h2c = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False))
        h2c.initiate_connection()
        tls.sendall(h2c.data_to_send())
        open_streams = {}
        tls.settimeout(0.2)
        while not self._stop:
            try:
                data = tls.recv(65536)
            except socket.timeout:
                continue
            except (ssl.SSLError, OSError):
                break
            if not data:
                break
            for ev in h2c.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    open_streams[ev.stream_id] = b""
                elif isinstance(ev, h2.events.DataReceived):
                    open_streams[ev.stream_id] = \
                        open_streams.get(ev.stream_id, b"") + ev.data
                    h2c.acknowledge_received_data(
                        ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded):
                    with self.lock:
                        self.max_concurrent = max(self.max_concurrent,
                                                  len(open_streams))
                        self.bodies.append(open_streams.pop(ev.stream_id))
                    h2c.send_headers(ev.stream_id,
                                     [(":status", str(self.status)),
                                      ("content-length", "0")],
                                     end_stream=True)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    break
            out = h2c.data_to_send()
            if out:
                tls.sendall(out)
        try:
            tls.close()
        except OSError:
            pass

    def wait_for(self, n, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.bodies) >= n:
                    return True
            time.sleep(0.02)  # poll interval, not synchronisation
        return False

    def stop(self):
        self._stop = True
        self.sock.close()
        for t in self._threads:
            t.join(timeout=2)
