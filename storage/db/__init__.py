"""The database: engine and migrations, the models, and the repositories over them."""
