#!/usr/bin/env python3
"""Precision and recall of each scanner's report on a labelled corpus.

A file counts as reported when the scanner reports any finding in it. A
positive file reported is a true positive, a negative file reported a false
positive, a positive file not reported a false negative.

usage: score.py CORPUS_DIR NAME=REPORT_FILE...
"""
import json
import os
import sys


def files_coffer(report, root):
    return {f["file"] for f in json.load(open(report))["findings"]}


def files_detect_secrets(report, root):
    return set(json.load(open(report))["results"].keys())


def files_credsweeper(report, root):
    out = set()
    for cand in json.load(open(report)):
        for ld in cand.get("line_data_list", []):
            out.add(ld["path"])
    return out


def files_kingfisher(report, root):
    return {f["finding"]["path"] for f in json.load(open(report))["findings"]}


READERS = {
    "coffer": files_coffer,
    "detect-secrets": files_detect_secrets,
    "credsweeper": files_credsweeper,
    "kingfisher": files_kingfisher,
}


def relative(path, root):
    path = os.path.normpath(path)
    if os.path.isabs(path):
        path = os.path.relpath(path, root)
    return path


def main():
    root = os.path.abspath(sys.argv[1])
    labels = json.load(open(os.path.join(root, "labels.json")))
    print(f"corpus: {sum(1 for v in labels.values() if v['expect'])} positive files, "
          f"{sum(1 for v in labels.values() if not v['expect'])} negative files")
    print(f"{'scanner':<16} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7}")
    details = {}
    for arg in sys.argv[2:]:
        name, report = arg.split("=", 1)
        reported = {relative(p, root) for p in READERS[name](report, root)}
        tp = fp = fn = 0
        missed, wrong = {}, {}
        for path, label in labels.items():
            hit = path in reported
            case = path.split("/")[0].rsplit("-", 1)[0]
            if label["expect"]:
                if hit:
                    tp += 1
                else:
                    fn += 1
                    missed[case] = missed.get(case, 0) + 1
            elif hit:
                fp += 1
                wrong[case] = wrong.get(case, 0) + 1
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        print(f"{name:<16} {tp:>4} {fp:>4} {fn:>4} {precision:>9.3f} {recall:>7.3f}")
        details[name] = (missed, wrong)
    for name, (missed, wrong) in details.items():
        if missed:
            print(f"{name} missed: {', '.join(f'{k} x{v}' for k, v in sorted(missed.items()))}")
        if wrong:
            print(f"{name} false positives: {', '.join(f'{k} x{v}' for k, v in sorted(wrong.items()))}")


main()
