"""An SMTP server for tests/alertmanager_builtin.rs: takes every message (AUTH PLAIN/LOGIN
accepted for any user) and writes each as <n>.eml into the directory given. Usage:
smtp_sink.py PORT DIR."""
import asyncio
import os
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Save:
    def __init__(self, out):
        self.out = out
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        path = os.path.join(self.out, f"{self.n}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(f"X-Envelope-From: {envelope.mail_from}\r\n".encode())
            f.write(f"X-Envelope-To: {','.join(envelope.rcpt_tos)}\r\n".encode())
            f.write(f"X-Helo: {session.host_name}\r\n".encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def main():
    port, out = int(sys.argv[1]), sys.argv[2]
    os.makedirs(out, exist_ok=True)
    c = Controller(
        Save(out),
        hostname="127.0.0.1",
        port=port,
        auth_require_tls=False,
        # PLAIN only: Go's LOGIN client (Alertmanager's) does not understand aiosmtpd's LOGIN challenge.
        auth_exclude_mechanism=["LOGIN"],
        authenticator=lambda *a: AuthResult(success=True),
    )
    c.start()
    print("ready", flush=True)
    try:
        asyncio.get_event_loop().run_forever()
    except KeyboardInterrupt:
        pass
    finally:
        c.stop()


if __name__ == "__main__":
    main()
