from classifier.app import create_app
from classifier.config import get_settings
from shared import app as base


def run() -> None:
    settings = get_settings()
    base.serve(create_app(settings), settings, service="classifier")


if __name__ == "__main__":
    run()
