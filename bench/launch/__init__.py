"""``run --launcher submitit``: cluster jobs submitted through submitit, and what runs inside them."""
