"""ForceCommand of the test SSH server: runs only git's pack commands inside the repository root.

Creates a bare repository on the first push, like the HTTP side. Invoked by sshd as
``python3 gitshell.py REPO_ROOT`` with the client's command in ``SSH_ORIGINAL_COMMAND``.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

ALLOWED = {"git-upload-pack", "git-receive-pack", "git-upload-archive"}


def main() -> int:
    root = Path(sys.argv[1]).resolve()
    words = shlex.split(os.environ.get("SSH_ORIGINAL_COMMAND", ""))
    if len(words) != 2 or words[0] not in ALLOWED:
        sys.stderr.write("testenv git shell: only git pack commands are allowed\n")
        return 1
    repo = (root / words[1].lstrip("/")).resolve() if not words[1].startswith(str(root)) else Path(words[1]).resolve()
    if root not in repo.parents:
        sys.stderr.write(f"testenv git shell: {words[1]} is outside the repository root\n")
        return 1
    if not repo.exists():
        if words[0] != "git-receive-pack":
            sys.stderr.write(f"testenv git shell: no repository {words[1]}\n")
            return 1
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from testenvlib.servers import init_bare

        init_bare(repo)
    os.execvp(words[0], [words[0], str(repo)])
    return 1


if __name__ == "__main__":
    sys.exit(main())
