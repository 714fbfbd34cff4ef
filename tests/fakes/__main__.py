"""Run the fake Twilio + SendGrid server by hand: `python -m tests.fakes [--port 8025] [--latency 0.05]`.

Prints the AFTERCARE_* variables that point the app at it; Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import time

from tests.fakes.server import FakeProviders


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every answer")
    args = parser.parse_args()
    with FakeProviders(host=args.host, port=args.port, latency=args.latency, record_requests=False) as fake:
        for name, value in fake.settings_env().items():
            print(f"export {name}={value}")
        print(f"# fake Twilio + SendGrid listening on {fake.url}; Ctrl-C to stop", flush=True)
        try:
            while True:
                time.sleep(5)
                print(f"# accepted so far: {len(fake.sent_sms)} SMS, {len(fake.sent_email)} emails", flush=True)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
