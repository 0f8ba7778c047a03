"""Generation tasks: priors over symptoms and style examples, prompt templates, the task table."""
