def main() -> None:
    print("zex")
