"""A pipeline process for stream tests: ``--pipeline MODULE:NAME`` run under the test's
own pipeline name (so tests never share groups or topics) until SIGTERM or kill -9."""

from __future__ import annotations

import argparse
import json
import logging

from kes.store.kafka import KafkaConfig
from kes.streams import Pipeline
from kes.streams.runner import load_pipeline


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True, help="KafkaConfig fields as JSON")
    parser.add_argument("--pipeline", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state-dir", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    template = load_pipeline(args.pipeline)
    pipeline = Pipeline(args.name, template.build, aggregates=template.aggregates)
    config = KafkaConfig(**json.loads(args.config))
    pipeline.application(config, state_dir=args.state_dir).app.run()


if __name__ == "__main__":
    main()
