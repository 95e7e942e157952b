"""``gdt embed`` and ``gdt classify train|filter``: the command line of the classifier stages."""

from __future__ import annotations

import argparse

from pipeline.errors import UserError
from pipeline.stage_command import add_stage_arguments, run_stage_command, stage_config


def register(subparsers: argparse._SubParsersAction) -> None:
    embed = subparsers.add_parser(
        "embed",
        help="per-image vectors of every grouped image",
        description=(
            "Embed every image used by some candidate group with the configured encoder (open_clip when "
            "embed.encoder.pretrained is set, else the offline EfficientNet-Lite0). Writes "
            "RUN/embed/{embeddings,drops} (float16, L2-normalised; encoder in the manifest)."
        ),
    )
    add_stage_arguments(embed)
    embed.set_defaults(func=run_embed)

    classify = subparsers.add_parser("classify", help="train the group classifier, or filter groups with it")
    actions = classify.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser(
        "train",
        help="fit, cross-validate by source, choose the threshold, write metrics and plots",
        description=(
            "Train the binary group classifier on RUN/labels/labels.parquet. Writes RUN/classify/model/ "
            "(model.skops, model.json, metrics.json, PNG plots)."
        ),
    )
    add_stage_arguments(train)
    train.set_defaults(func=run_train)
    filt = actions.add_parser(
        "filter",
        help="score every candidate group; drop those under the threshold",
        description="Write RUN/classify/scores and RUN/classify/drops (low_score) with the trained model.",
    )
    add_stage_arguments(filt)
    filt.set_defaults(func=run_filter)


def run_embed(args: argparse.Namespace) -> int:
    from classifier.embed import EmbedStage

    run_stage_command(EmbedStage(), args)
    return 0


def run_train(args: argparse.Namespace) -> int:
    from classifier.config import ClassifyConfig
    from classifier.encoders import EncoderMismatchError
    from classifier.model_io import ModelFileError
    from classifier.train import metrics_summary, model_dir, train_classifier

    cfg, _ = stage_config(args, "classify", ClassifyConfig)
    try:
        metrics = train_classifier(args.run, cfg)
    except (EncoderMismatchError, ModelFileError) as err:
        raise UserError(str(err)) from err
    if not args.quiet:
        print(metrics_summary(metrics))
        print(f"model, metrics.json and plots in {model_dir(args.run)}")
    return 0


def run_filter(args: argparse.Namespace) -> int:
    from classifier.filter import FilterStage

    run_stage_command(FilterStage(), args)
    return 0
