"""throwaway servers and builders for tests and benches; not part of the unit"""
