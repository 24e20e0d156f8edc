"""Click command groups of `flask --app app ...`; `bitrix_app/cli.py` registers them."""
