"""storefronts."""
