"""The downstream ICD-code experiment on RuMedTop3."""
