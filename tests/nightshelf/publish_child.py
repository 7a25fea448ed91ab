"""Run `publish` for one night, pausing at a named point so the test can kill it there.

    python publish_child.py DS POINT     (NIGHTSHELF_HOME names the home)

POINT: `manifest` (the manifest is written into staging, nothing swapped yet) or `swapped`
(the new folder is in place, the previous lists not yet deleted); on a lake with no atomic
rename, `pointer-manifest` (the new files copied in, the manifest not yet replaced) or
`pointer-cleanup` (the manifest replaced, the previous files not yet deleted). Prints
PAUSED and sleeps.
"""

import sys
import time

from nightshelf import publish as P
from nightshelf.config import load_config


def pause(*_args, **_kwargs):
    print("PAUSED", flush=True)
    time.sleep(120)


def main() -> None:
    ds, point = sys.argv[1], sys.argv[2]
    if point == "manifest":
        P.swap = pause
    elif point == "swapped":
        P.shutil.rmtree = pause
    elif point == "pointer-manifest":
        write = P.storage.write_text
        P.storage.write_text = lambda path, text: (
            pause() if path.name == P.MANIFEST else write(path, text))
    elif point == "pointer-cleanup":
        remove = P.storage.remove
        P.storage.remove = lambda path: (
            pause() if path.suffix == ".parquet" else remove(path))
    P.publish(load_config(), ds)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
