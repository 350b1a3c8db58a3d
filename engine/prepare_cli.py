"""``semclip prepare``: turn a captioned photo set into train/dev/test triples files.

    semclip prepare flickr8k --root ../shared/data/flickr8k --out triples/flickr8k
    semclip prepare captions --captions caps.csv --images photos/ [--splits splits.csv] --out DIR
    semclip prepare coco --captions captions_val2017.json --images val2017/ --out DIR
"""

from __future__ import annotations

import argparse
import sys


def cmd_prepare(args: argparse.Namespace) -> int:
    from .photo_sets import (PhotoSetError, make_triples, prepare_flickr8k, read_captions_csv,
                             read_coco_captions, read_splits)

    try:
        if args.source == "flickr8k":
            report = prepare_flickr8k(args.root, args.out)
        else:
            reader = read_coco_captions if args.source == "coco" else read_captions_csv
            images = reader(args.captions, args.images)
            splits = read_splits(args.splits) if args.splits else None
            report = make_triples(images, args.out, splits, default_split=args.split)
    except (PhotoSetError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    return 0 if report.written else 1


def add_prepare_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``prepare`` and its sources (``flickr8k``, ``captions``, ``coco``)."""
    p = subparsers.add_parser(
        "prepare", help="write train/dev/test triples from a captioned photo set",
        description="Each caption becomes a triple: paraphrase = another human caption of the "
                    "same image, negation = a false negation by the rules backend. Images are "
                    "named by absolute path, never copied.")
    sources = p.add_subparsers(dest="source", required=True)
    s = sources.add_parser("flickr8k", help="a Flickr8k folder (captions.csv, splits.csv, images/)")
    s.add_argument("--root", required=True, help="the Flickr8k folder")
    s.add_argument("--out", required=True, help="folder for train.csv, dev.csv, test.csv")
    for name, what in (("captions", "an image,caption CSV (several rows per image)"),
                       ("coco", "a COCO-style captions JSON (images + annotations)")):
        s = sources.add_parser(name, help=what)
        s.add_argument("--captions", required=True, help=what)
        s.add_argument("--images", required=True, help="folder the image names are relative to")
        s.add_argument("--splits", help="image,split CSV; without it every row goes to one file")
        s.add_argument("--split", default="triples",
                       help="file name (without .csv) when there is no splits file")
        s.add_argument("--out", required=True, help="output folder")
    p.set_defaults(func=cmd_prepare)
    return p
