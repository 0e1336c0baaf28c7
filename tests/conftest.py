"""Suite-wide options."""


def pytest_addoption(parser):
    parser.addoption(
        "--nightly",
        action="store_true",
        default=False,
        help="run the long property-test runs (thousands of random worlds) meant for nightly CI",
    )
