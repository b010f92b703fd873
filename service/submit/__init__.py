"""The submit stage: validate, price, admit and send a task to the provider."""
