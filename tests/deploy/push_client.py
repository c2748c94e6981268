"""One signed push of a short WAV to a service on this host's loopback; prints the answer.

`python -m tests.deploy.push_client PORT SOURCE`, run inside a container's network
namespace, where the loopback is the container's: prints {"status": ..., "body": ...}.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request

from tests.push_support import make_wav, metadata, push_body, push_headers

AUDIO_SECONDS = 2.0
RECORDING_ID = "image-test-0001"


def main() -> None:
    """Push, and print the status and body as one JSON line."""
    port, source = int(sys.argv[1]), sys.argv[2]
    body = push_body(metadata(recording_id=RECORDING_ID), make_wav(AUDIO_SECONDS))
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/push/{source}",
        data=body,
        headers=push_headers(body),
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            status, answer = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, exc.read()
    print(json.dumps({"status": status, "body": answer.decode()}))


if __name__ == "__main__":
    main()
