"""Print the table tests/data/dask_grammar.json: what dask's own parse_bytes and parse_timedelta
answer for a list of strings (a value, or null where dask refuses the string). The Rust grammar in
src/config/dask.rs is tested against it. Regenerate with:
    python3 -m venv v && v/bin/pip install dask && v/bin/python tests/py/dask_grammar.py > tests/data/dask_grammar.json
"""
import json

import dask
from dask.utils import parse_bytes, parse_timedelta

NUMBERS = ["1", "5", "0", "1.5", "5.4", ".5", "5.", "1e6", "1E3", "2.5e-3", "1_000", "1__0",
           "1_", "_1", "+5", "-5", "--5", "+-5", "1e", "e5", ".", "", "0x10", "1,5", "12abc3"]
BYTE_UNITS = ["", "B", "b", "k", "K", "kB", "KB", "kb", "KiB", "kiB", "Ki", "ki", "M", "MB", "MiB",
              "Mi", "G", "GB", "GiB", "Gi", "gib", "T", "TB", "TiB", "P", "PB", "PiB", "E", "EB",
              "bytes", "byte", "foos", "iB", "Kibit", "m", "mib"]
TIME_UNITS = ["", "s", "S", "ms", "MS", "us", "ns", "m", "M", "min", "mins", "h", "H", "hr", "d",
              "w", "second", "seconds", "Seconds", "sec", "secs", "minute", "minutes", "hour",
              "hours", "day", "days", "week", "weeks", "millisecond", "milliseconds",
              "microsecond", "nanoseconds", "y", "year", "foo"]
EXTRA_BYTES = ["100 MB", "5 foos", "MB", "GiB", "  64 GiB ", "64\tGiB", "1e30 PB", "1e400",
               "nan", "inf", "infkB", "1 0 MB", "128GiB", "250GB", "5 G", "5Gi", "1.5kB",
               "12 parsecs", "lots", "-1kB", "0.1 B", "1.9", "3.99999 kB", "16GB", "1e-3 kB"]
EXTRA_TIMES = ["3s", "3.5 seconds", "300ms", ".5s", "-5s", "s", "ms", "5 m", "2min", "1e2s",
               "1e400s", "1 0 s", " 5s", "5s ", "1h30m", "00:30:00", "1_000s", "inf", "nan",
               "+5s", "5", "5.0"]


def answer(f, s):
    try:
        v = f(s)
    except Exception:  # dask's refusal: ValueError, KeyError, IndexError, OverflowError
        return None
    return v


def main():
    byte_cases = sorted({n + " " * (i % 2) + u for i, n in enumerate(NUMBERS) for u in BYTE_UNITS}
                        | set(EXTRA_BYTES))
    time_cases = sorted({n + u for n in NUMBERS for u in TIME_UNITS} | set(EXTRA_TIMES))
    table = {
        "dask_version": dask.__version__,
        "parse_bytes": [[s, answer(parse_bytes, s)] for s in byte_cases],
        "parse_timedelta": [[s, answer(parse_timedelta, s)] for s in time_cases],
    }
    # Integers too large for JSON readers are kept as strings.
    for row in table["parse_bytes"]:
        if isinstance(row[1], int) and abs(row[1]) >= 2**63:
            row[1] = str(row[1])
    # One case per line, so a regenerated table diffs readably.
    out = ['{"dask_version": %s,' % json.dumps(table["dask_version"])]
    for i, key in enumerate(["parse_bytes", "parse_timedelta"]):
        out.append('"%s": [' % key)
        rows = [json.dumps(r) for r in table[key]]
        out.append(",\n".join(rows))
        out.append("]" + ("," if i == 0 else ""))
    out.append("}")
    print("\n".join(out))


main()
