"""The connector gateway: serves the four BI Builder connector endpoints from customers' databases."""
