#!/usr/bin/env python3
"""arrakis vs GNU make vs Snakemake on the same DAG: the engine benchmark's field shape.

    python3 benches/peers.py --islands 1000 [--snakemake /opt/snakemake-venv/bin/snakemake]

`arrakis bench engine --islands N --dir D` writes the synthetic field (36 beams x 3 Stokes cutout
targets, 3 linmos and a frion per island, rmsynth and rmclean per component, one catalogue) and
builds it with arrakis. This script then writes a Makefile and a Snakefile of the same targets,
inputs and outputs (every recipe `touch`es its outputs), builds fresh copies of the field with
make -j2 and snakemake --cores 2, and times in the same run, for each tool: the cold build, a
no-op build and a dry run. It prints a markdown table with the ratios to arrakis.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

FIELD = "BENCH_0000-00A"
STOKES = "iqu"


def run(cmd, cwd, env=None):
    """Wall seconds of a command that must succeed."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed in {cwd}:\n{p.stderr.decode()[-3000:]}")
    return dt


def median3(f):
    return sorted(f() for _ in range(3))[1]


def shape(field_dir):
    """(beam -> islands, island -> components) from the field arrakis built."""
    in_beam = defaultdict(list)
    pat = re.compile(r"\.cutout\.image\.restored\.i\." + re.escape(FIELD) + r"\.contcube\.beam(\d\d)\.conv\.fits$")
    for src in sorted(os.listdir(field_dir / "cutouts")):
        for f in os.listdir(field_dir / "cutouts" / src):
            m = pat.search(f)
            if m:
                in_beam[m.group(1)].append(src)
    comps = defaultdict(list)
    with open(field_dir / "catalogue/components.csv") as fh:
        next(fh)
        for line in fh:
            gid, sid = line.split(",")[:2]
            comps[sid].append(gid)
    return {b: sorted(v) for b, v in in_beam.items()}, comps


def paths(in_beam, comps):
    cut = lambda src, s, b: f"cutouts/{src}/{src}.cutout.image.restored.{s}.{FIELD}.contcube.beam{b}.conv.fits"
    mos = lambda src, s: f"cutouts/{src}/{src}.cutout.image.restored.{s}.{FIELD}.contcube.linmos.fits"
    wgt = lambda src, s: f"cutouts/{src}/{src}.cutout.weights.{s}.{FIELD}.contcube.linmos.fits"
    ion = lambda src, s: f"cutouts/{src}/{src}.cutout.image.restored.{s}.{FIELD}.contcube.linmos.ion.fits"
    return cut, mos, wgt, ion


def makefile(in_beam, comps):
    cut, mos, wgt, ion = paths(in_beam, comps)
    beams_of = defaultdict(list)
    for b, srcs in in_beam.items():
        for s in srcs:
            beams_of[s].append(b)
    out = [f"all: {FIELD}.catalogue.csv\n"]
    cat_in = []
    for b, srcs in sorted(in_beam.items()):
        for s in STOKES:
            outs = " ".join(cut(src, s, b) for src in srcs)
            # One recipe line per 200 islands: a shell command line has a length limit.
            lines = "".join(
                "\t@mkdir -p {} && touch {}\n".format(
                    " ".join(f"cutouts/{src}" for src in srcs[k:k + 200]),
                    " ".join(cut(src, s, b) for src in srcs[k:k + 200]),
                )
                for k in range(0, len(srcs), 200)
            )
            out.append(
                f"{outs} &: image.restored.{s}.{FIELD}.contcube.beam{b}.conv.fits catalogue/islands.csv catalogue/components.csv\n"
                + lines
            )
    for src in sorted(beams_of):
        for s in STOKES:
            ins = " ".join(cut(src, s, b) for b in beams_of[src])
            out.append(f"{mos(src, s)} {wgt(src, s)} &: {ins}\n\ttouch {mos(src, s)} {wgt(src, s)}\n")
        m3 = " ".join(mos(src, s) for s in STOKES)
        out.append(f"{ion(src, 'q')} {ion(src, 'u')} &: {m3}\n\ttouch {ion(src, 'q')} {ion(src, 'u')}\n")
        for c in comps[src]:
            sj, sf = f"cutouts/{src}/{c}_RMsynth.json", f"cutouts/{src}/{c}_FDFdirty.dat"
            cj, cf = f"cutouts/{src}/{c}_RMclean.json", f"cutouts/{src}/{c}_FDFclean.dat"
            out.append(f"{sj} {sf} &: {m3} {ion(src, 'q')}\n\ttouch {sj} {sf}\n")
            out.append(f"{cj} {cf} &: {sf} {sj}\n\ttouch {cj} {cf}\n")
            cat_in += [sj, cj]
    out.insert(1, f"{FIELD}.catalogue.csv: {' '.join(cat_in)}\n\ttouch $@\n")
    return "".join(out)


def snakefile(in_beam, comps):
    beams_of = defaultdict(list)
    for b, srcs in in_beam.items():
        for s in srcs:
            beams_of[s].append(b)
    return f'''
FIELD = "{FIELD}"
IN_BEAM = {dict(in_beam)!r}
BEAMS_OF = {dict(beams_of)!r}
COMPS = {dict(comps)!r}
SRC_OF = {{c: s for s, cs in COMPS.items() for c in cs}}

wildcard_constraints:
    src="[^/]+",
    comp="[^/]+_c[0-9]+",
    stokes="[iqu]",

rule all:
    input: f"{{FIELD}}.catalogue.csv"

rule catalogue:
    input:
        [f"cutouts/{{SRC_OF[c]}}/{{c}}_RMsynth.json" for c in SRC_OF],
        [f"cutouts/{{SRC_OF[c]}}/{{c}}_RMclean.json" for c in SRC_OF],
    output: f"{{FIELD}}.catalogue.csv"
    shell: "touch {{output}}"

for b in sorted(IN_BEAM):
    for s in "iqu":
        rule:
            name: f"cutout_{{b}}_{{s}}"
            input: f"image.restored.{{s}}.{{FIELD}}.contcube.beam{{b}}.conv.fits", "catalogue/islands.csv", "catalogue/components.csv"
            output: [f"cutouts/{{src}}/{{src}}.cutout.image.restored.{{s}}.{{FIELD}}.contcube.beam{{b}}.conv.fits" for src in IN_BEAM[b]]
            shell: "mkdir -p $(dirname {{output}}) && touch {{output}}"

rule linmos:
    input: lambda w: [f"cutouts/{{w.src}}/{{w.src}}.cutout.image.restored.{{w.stokes}}.{{FIELD}}.contcube.beam{{b}}.conv.fits" for b in BEAMS_OF[w.src]]
    output:
        "cutouts/{{src}}/{{src}}.cutout.image.restored.{{stokes}}." + FIELD + ".contcube.linmos.fits",
        "cutouts/{{src}}/{{src}}.cutout.weights.{{stokes}}." + FIELD + ".contcube.linmos.fits",
    shell: "touch {{output}}"

rule frion:
    input: lambda w: [f"cutouts/{{w.src}}/{{w.src}}.cutout.image.restored.{{s}}.{{FIELD}}.contcube.linmos.fits" for s in "iqu"]
    output:
        "cutouts/{{src}}/{{src}}.cutout.image.restored.q." + FIELD + ".contcube.linmos.ion.fits",
        "cutouts/{{src}}/{{src}}.cutout.image.restored.u." + FIELD + ".contcube.linmos.ion.fits",
    shell: "touch {{output}}"

rule rmsynth:
    input:
        lambda w: [f"cutouts/{{w.src}}/{{w.src}}.cutout.image.restored.{{s}}.{{FIELD}}.contcube.linmos.fits" for s in "iqu"],
        lambda w: f"cutouts/{{w.src}}/{{w.src}}.cutout.image.restored.q.{{FIELD}}.contcube.linmos.ion.fits",
    output: "cutouts/{{src}}/{{comp}}_RMsynth.json", "cutouts/{{src}}/{{comp}}_FDFdirty.dat"
    shell: "touch {{output}}"

rule rmclean:
    input: "cutouts/{{src}}/{{comp}}_FDFdirty.dat", "cutouts/{{src}}/{{comp}}_RMsynth.json"
    output: "cutouts/{{src}}/{{comp}}_RMclean.json", "cutouts/{{src}}/{{comp}}_FDFclean.dat"
    shell: "touch {{output}}"
'''


def fresh_copy(src_field, dest):
    """The field's inputs only (cubes, catalogues, field.yaml), no outputs."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for f in os.listdir(src_field):
        p = src_field / f
        if p.is_file() and not f.endswith(".catalogue.csv"):
            shutil.copy2(p, dest / f)
    shutil.copytree(src_field / "catalogue", dest / "catalogue")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--islands", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/arrakis-peers"))
    ap.add_argument("--arrakis", type=Path, default=Path(__file__).resolve().parents[1] / "target/release/arrakis")
    ap.add_argument("--snakemake", default=shutil.which("snakemake") or "/opt/snakemake-venv/bin/snakemake")
    ap.add_argument("--no-snakemake", action="store_true", help="skip Snakemake (it is slow on big DAGs)")
    a = ap.parse_args()
    d = a.dir.resolve()
    d.mkdir(parents=True, exist_ok=True)
    exe = str(a.arrakis)

    # arrakis: the engine bench writes and builds the field; time the phases here too.
    subprocess.run([exe, "bench", "engine", "--islands", str(a.islands), "--dir", str(d / "arrakis")],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    field = d / "arrakis" / "data" / FIELD
    # Each tool builds a fresh copy of the inputs (deleting outputs first would slow the next
    # build's file creation on ext4).
    ad = d / "arrakis-fresh"
    fresh_copy(field, ad / "data" / FIELD)
    if (ad / "cache").exists():
        shutil.rmtree(ad / "cache")
    build = [exe, "--cache", str(ad / "cache"), "build", FIELD, "--quiet", "-j", "2",
             "--datadir", str(ad / "data"), "--rules", str(d / "arrakis" / "rules")]
    res = {"arrakis": {}}
    res["arrakis"]["cold"] = run(build, ad)
    res["arrakis"]["no-op"] = median3(lambda: run(build, ad))
    res["arrakis"]["dry-run"] = median3(lambda: run(build + ["--dry-run"], ad))
    # The same decisions made by evaluating every target (no snapshot of the last build).
    res["arrakis --full-check"] = {
        "cold": float("nan"),
        "no-op": median3(lambda: run(build + ["--full-check"], ad)),
        "dry-run": median3(lambda: run(build + ["--full-check", "--dry-run"], ad)),
    }
    in_beam, comps = shape(field)
    n_targets = 3 * len(in_beam) + 4 * len({s for v in in_beam.values() for s in v}) + 2 * sum(map(len, comps.values())) + 1

    md = d / "make"
    fresh_copy(field, md)
    (md / "Makefile").write_text(makefile(in_beam, comps))
    res["make"] = {
        "cold": run(["make", "-j2", "-s"], md),
        "no-op": median3(lambda: run(["make", "-j2", "-s"], md)),
        "dry-run": median3(lambda: run(["make", "-n"], md)),
    }

    if not a.no_snakemake:
        sd = d / "snakemake"
        fresh_copy(field, sd)
        (sd / "Snakefile").write_text(snakefile(in_beam, comps))
        smk = [a.snakemake, "--cores", "2", "--quiet", "all"]
        res["snakemake"] = {
            "cold": run(smk, sd),
            "no-op": median3(lambda: run(smk, sd)),
            "dry-run": median3(lambda: run(smk + ["-n"], sd)),
        }

    print(f"{a.islands} islands, {n_targets} targets, -j 2 / --cores 2; "
          f"{time.strftime('%Y-%m-%d')}, {os.uname().nodename}\n")
    print("| tool | cold build s | no-op s | dry run s | no-op vs arrakis | dry run vs arrakis |")
    print("|---|---:|---:|---:|---:|---:|")
    base = res["arrakis"]
    for tool, r in res.items():
        cold = "—" if r["cold"] != r["cold"] else f"{r['cold']:.2f}"
        print(f"| {tool} | {cold} | {r['no-op']:.3f} | {r['dry-run']:.3f} | "
              f"{r['no-op'] / base['no-op']:.1f}x | {r['dry-run'] / base['dry-run']:.1f}x |")


if __name__ == "__main__":
    main()
