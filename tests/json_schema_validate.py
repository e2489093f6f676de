#!/usr/bin/python3
"""Validates JSON documents against JSON Schemas with Debian's python3-jsonschema.

    json_schema_validate.py SCHEMA DOCUMENT [DOCUMENT ...]
    json_schema_validate.py --pairs FILE      (FILE: one "SCHEMA<TAB>DOCUMENT" per line)

Each schema is checked against its metaschema first ($schema names the draft). Prints one line
per error (the document, the JSON path and what is wrong) and exits 1 when there is any; exits 0
silently when every document is valid, 2 on unreadable input. One process for many documents:
starting Python costs more than validating.
"""
import json
import sys

import jsonschema


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv):
    if len(argv) == 3 and argv[1] == "--pairs":
        try:
            with open(argv[2], encoding="utf-8") as f:
                pairs = [line.rstrip("\n").split("\t") for line in f if line.strip()]
        except OSError as e:
            print(f"{argv[2]}: {e}", file=sys.stderr)
            return 2
    elif len(argv) >= 3:
        pairs = [(argv[1], document) for document in argv[2:]]
    else:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    validators = {}
    failed = False
    for schema_path, path in pairs:
        try:
            if schema_path not in validators:
                schema = load(schema_path)
                cls = jsonschema.validators.validator_for(schema)
                try:
                    cls.check_schema(schema)
                except jsonschema.exceptions.SchemaError as e:
                    print(f"{schema_path}: not a valid {cls.__name__} schema: {e.message} at {e.json_path}")
                    return 1
                validators[schema_path] = cls(schema, format_checker=cls.FORMAT_CHECKER)
            document = load(path)
        except (OSError, ValueError) as e:
            print(f"{e.filename if isinstance(e, OSError) else path}: {e}", file=sys.stderr)
            return 2
        for error in sorted(validators[schema_path].iter_errors(document), key=lambda e: list(e.absolute_path)):
            failed = True
            print(f"{path}: {error.json_path}: {error.message}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
