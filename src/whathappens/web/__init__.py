"""The live web page: whathappens serve."""
