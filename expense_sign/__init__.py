"""expense-sign: sign the payment request forms waiting for you with your CA token (PKCS#11)."""
