"""Networks and the weights store that ships them."""
