"""Quality filtering of reasoning paths: answer check, judges (arithmetic, llm), graph consensus."""
