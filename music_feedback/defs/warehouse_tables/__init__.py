"""The warehouse tables the batch reads, as external assets upstream of the stages that read them."""
