# A stand-in with the layout of the authors' generation script: the same
# names, the same literal forms, other values.
import argparse

general_themes = [
    "Gardening",
    'Board Games',  # single quotes too
    "Astronomy"
]

general_triggers = [
    "Tell me ",
    "Plan a "
    "Trip: ",
    "How ",
]

math_themes = [
    "Sequences",
    "Probability",
]

code_themes = ["Implementing a Go Code", "Fixing a Rust Code"]

placeholder_formats = {
    "test_input_trigger": "INPUT:",
    "stop_phrase": "[END]",
}

def main(args):
    config = dict(
        retries=3,
        system_message="You write training data \"carefully\" and follow the given format."
    )
