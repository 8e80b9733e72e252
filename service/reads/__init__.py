"""The read API: its queries, answers, views and paging."""
