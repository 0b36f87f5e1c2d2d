"""The floor of a full import: fetch what it reads and parse it, with the standard library only.

Run as its own process by `import_bench.py` (so its time and peak memory are a whole process's,
like the import's): the users list with memberships expanded, then the site pages the client
reads (page 1, 2, ... of `limit` sites until an empty page), each parsed with `json.loads`.
Nothing is checked, kept or written: no import can do less and still have read the corp.

    python bench/fetch_floor.py BASE_URL CORP EMAIL TOKEN [PAGE_SIZE]
"""

from __future__ import annotations

import json
import sys
import urllib.request
from typing import Any


def main() -> None:
    base, corp, email, token = sys.argv[1:5]
    page_size = int(sys.argv[5]) if len(sys.argv) > 5 else 100
    headers = {"x-api-user": email, "x-api-token": token, "Accept": "application/json"}
    prefix = f"{base.rstrip('/')}/api/v0/corps/{corp}"

    def get(path: str) -> Any:
        request = urllib.request.Request(prefix + path, headers=headers)  # noqa: S310  # loopback
        with urllib.request.urlopen(request) as response:  # noqa: S310  # loopback
            return json.loads(response.read())

    users = get("/users?expand=memberships")["data"]
    memberships = sum(len(u["memberships"]["data"]) for u in users)
    sites = 0
    page = 1
    while True:
        data = get(f"/sites?page={page}&limit={page_size}")["data"]
        if not data:
            break
        sites += len(data)
        page += 1
    print(json.dumps({"users": len(users), "memberships": memberships, "sites": sites}))


if __name__ == "__main__":
    main()
