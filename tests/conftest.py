"""Suite-wide options."""


def pytest_addoption(parser):
    parser.addoption(
        "--nightly",
        action="store_true",
        default=False,
        help="run the long property-test runs (thousands of random worlds) meant for nightly CI",
    )


# Fake OpenAI/Exa servers and the environment pointing TOW at them (tests/ai_fixtures.py).
pytest_plugins = ["tests.ai_fixtures"]
