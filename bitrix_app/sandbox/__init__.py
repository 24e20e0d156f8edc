"""The sandbox: a fake Bitrix24 (`fake/`) and the command that runs it next to the app."""
